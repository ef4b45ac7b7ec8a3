/** Every man page of slurm-krsi, with the file name man(1) expects. */
import { AGENT_MANUAL } from './agent.js';
import { CONFIG_MANUAL } from './config.js';
import { KRSICTL_MANUAL } from './krsictl.js';
import type { Manual } from './manual.js';
import { OVERVIEW_MANUAL } from './overview.js';

export const MAN_PAGES: readonly Manual[] = [AGENT_MANUAL, KRSICTL_MANUAL, CONFIG_MANUAL, OVERVIEW_MANUAL];

export function manFileName(m: Manual): string {
  return `${m.name}.${m.section}`;
}
