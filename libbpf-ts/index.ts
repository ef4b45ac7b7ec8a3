// libbpf-ts: a small typed binding of libbpf 1.x over koffi. Objects, programs, links, maps, ring buffers,
// and libbpf's log; each class owns its native handles and releases them in close()/destroy().
export { BpfObject, BpfProgram, progInfoById, type ProgInfo } from './object.js';
export { BpfLink, linkInfoByFd, type LinkInfo } from './link.js';
export { BpfMap, MapType, mapInfoByFd, numPossibleCpus, type MapInfo, type UpdateFlag } from './map.js';
export { RingBuffer, DEFAULT_BUDGET, DEFAULT_POLL_TIMEOUT_MS, type RingBufferOptions } from './ringbuf.js';
export { LibbpfError, describeErrno, MESSAGE_LOG_LINES } from './errors.js';
export {
  setLibbpfLogHandler,
  recentLibbpfLog,
  RECENT_LOG_LINES,
  type LibbpfLogHandler,
  type LibbpfLogLevel,
  type LogLine,
} from './log.js';
export { loadLibbpf, DEFAULT_LIBBPF } from './ffi.js';
