/**
 * Run by journal.test.ts inside a mount namespace where a real systemd-journald listens on
 * /run/systemd/journal/socket: one event through the agent's pipeline into the journal, as the agent
 * under systemd sends it. Prints the event's log line.
 */
import { BootClock } from '../../../agent/events/clock.js';
import { EventPipeline } from '../../../agent/events/pipeline.js';
import { JournalSocket } from '../../../agent/log/journal.js';
import { rawEvent } from './raw-event.js';

const journal = new JournalSocket();
journal.open();
const pipeline = new EventPipeline({ clock: new BootClock(), jobOf: () => '1234,1240', windowSize: 1, logPath: null, journal });
pipeline.handle(rawEvent({ uid: 1000, pid: 77, comm: 'evil\nX=1' }));
await pipeline.close();
journal.close();
console.log(pipeline.page(0, 1).events[0]!.line);
