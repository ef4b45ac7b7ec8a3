/** krsi.ini(5), from the key tables (the same ones that validate the file and write the sample deploy/krsi.ini). */
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { AGENT_FIELDS, AGENT_KEYS, agentKeyDoc, PROFILE_KEYS } from '../config/keys.js';
import { CONFIG_RULES, EXAMPLES, PROFILES_RULES } from '../config/sample.js';
import { code, items, text, type Manual } from './manual.js';

export const CONFIG_MANUAL: Manual = {
  name: 'krsi.ini',
  section: 5,
  summary: 'configuration of slurm-krsi: the agent, and the policy profiles jobs run under',
  sections: [
    { title: 'SYNOPSIS', blocks: [text(DEFAULT_CONFIG_PATH)] },
    {
      title: 'DESCRIPTION',
      blocks: [
        text(
          'An INI file with one [agent] section, for krsi-agent(8) and the Slurm prolog and epilog, and one [profile NAME] section per policy profile. Keep it identical on every node and on the controller, where it feeds the list of valid profile names of job_submit.lua (krsictl profiles --lua).',
        ),
        text(CONFIG_RULES),
      ],
    },
    {
      title: 'THE [agent] SECTION',
      blocks: [
        items(
          AGENT_FIELDS.map((f) => {
            const key = AGENT_KEYS[f];
            return { term: `${key.name} = ${key.default === '' ? '(empty)' : key.default}`, text: agentKeyDoc(key) };
          }),
        ),
      ],
    },
    {
      title: 'PROFILE SECTIONS',
      blocks: [
        text(`[profile NAME] sections, NAME of 1 to 64 letters, digits, dots, underscores and dashes. ${PROFILES_RULES} Every profile key is applied to running jobs by a reload.`),
        items(PROFILE_KEYS.map((k) => ({ term: k.name, text: `${k.doc} Absent: ${k.absent}.` }))),
      ],
    },
    { title: 'EXAMPLE', blocks: [code(EXAMPLES)] },
    {
      title: 'FILES',
      blocks: [items([{ term: DEFAULT_CONFIG_PATH, text: 'the configuration (krsi-agent --config and krsictl --config name another)' }])],
    },
    { title: 'SEE ALSO', blocks: [text('krsi-agent(8), krsictl(8), slurm-krsi(7)')] },
  ],
};
