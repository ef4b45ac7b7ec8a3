// BpfLink: an attachment of a program (struct bpf_link), owned by this wrapper until destroy().
import { getNative, type Ptr } from './ffi.js';
import { lastErrno, libbpfError } from './errors.js';
import { withLogCapture } from './log.js';

/** What the kernel reports about a link (the head of struct bpf_link_info). */
export interface LinkInfo {
  /** enum bpf_link_type */
  readonly type: number;
  readonly id: number;
  /** the id of the program the link attaches */
  readonly progId: number;
}

/** struct bpf_link_info of the link behind `fd`, its common head (type, id, prog_id) only */
export function linkInfoByFd(fd: number): LinkInfo {
  const buf = Buffer.alloc(16);
  const ret = getNative().bpf_obj_get_info_by_fd(fd, buf, [buf.length]);
  if (ret < 0) throw libbpfError(`bpf_obj_get_info_by_fd(link fd ${fd})`, ret);
  return { type: buf.readUInt32LE(0), id: buf.readUInt32LE(4), progId: buf.readUInt32LE(8) };
}

export class BpfLink {
  #ptr: Ptr | null;
  /** What this link attaches, for error messages ("prog 'x'" or the pin path it was opened from). */
  readonly description: string;

  /** @internal Use BpfProgram.attach() or BpfLink.openPinned(). */
  constructor(ptr: Ptr, description: string) {
    this.#ptr = ptr;
    this.description = description;
  }

  /** Open a link pinned in bpffs (bpf_link__open). destroy() on it drops this process's reference only. */
  static openPinned(path: string): BpfLink {
    const n = getNative();
    return withLogCapture((log) => {
      const ptr = n.bpf_link__open(path);
      if (ptr === null) throw libbpfError(`bpf_link__open(${path})`, lastErrno(), log);
      return new BpfLink(ptr, path);
    });
  }

  get destroyed(): boolean {
    return this.#ptr === null;
  }

  get fd(): number {
    return getNative().bpf_link__fd(this.#live('fd'));
  }

  /** The kernel's view of the link: its id and its program's. */
  info(): LinkInfo {
    return linkInfoByFd(this.fd);
  }

  /** The bpffs path this link was pinned at through this handle, or null. */
  get pinPath(): string | null {
    return getNative().bpf_link__pin_path(this.#live('pinPath'));
  }

  /**
   * Pin the link at `path` on a bpffs mount (bpf_link__pin). A pinned link keeps the program attached after
   * every fd to it is closed, this process included; remove the pin with unpin() (or unlink the file).
   */
  pin(path: string): void {
    const n = getNative();
    const ptr = this.#live('pin');
    withLogCapture((log) => {
      const ret = n.bpf_link__pin(ptr, path);
      if (ret < 0) throw libbpfError(`bpf_link__pin(${this.description} -> ${path})`, ret, log);
    });
  }

  /** Remove the pin made by pin(), or the one openPinned() opened (bpf_link__unpin). */
  unpin(): void {
    const n = getNative();
    const ptr = this.#live('unpin');
    withLogCapture((log) => {
      const ret = n.bpf_link__unpin(ptr);
      if (ret < 0) throw libbpfError(`bpf_link__unpin(${this.description})`, ret, log);
    });
  }

  /**
   * For an iterator link (a program in an iter/ section): a new fd whose read() runs the iterator and
   * returns what it wrote (bpf_iter_create). The caller owns and closes the fd.
   */
  createIter(): number {
    const ret = getNative().bpf_iter_create(this.fd);
    if (ret < 0) throw libbpfError(`bpf_iter_create(${this.description})`, ret);
    return ret;
  }

  /**
   * Make destroy() release only the memory, leaving the kernel attachment (and its fds) in place
   * (bpf_link__disconnect). Leaks the fds for the life of the process: use pin() instead where possible.
   */
  disconnect(): void {
    getNative().bpf_link__disconnect(this.#live('disconnect'));
  }

  /**
   * Release the link (bpf_link__destroy): closes its fds, which detaches the program unless something else
   * holds the link. A pinned link stays attached in the kernel after destroy(): the pin holds a reference.
   * (Checked with a pinned raw_tp link: it keeps firing after destroy() and after the process exits.) For
   * perf-event based links (tp/, kprobe/) libbpf's destroy also issues PERF_EVENT_IOC_DISABLE on the perf
   * event, so such a link may stop firing even though pinned: for attachments that must outlive the process
   * prefer BPF-link attachments (lsm/, fentry/, raw_tp/). Idempotent.
   */
  destroy(): void {
    const ptr = this.#ptr;
    if (ptr === null) return;
    this.#ptr = null;
    const ret = getNative().bpf_link__destroy(ptr);
    if (ret < 0) throw libbpfError(`bpf_link__destroy(${this.description})`, ret);
  }

  #live(what: string): Ptr {
    if (this.#ptr === null) throw new Error(`BpfLink.${what}: link ${this.description} was destroyed`);
    return this.#ptr;
  }
}
