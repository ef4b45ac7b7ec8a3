/** Writes deploy/krsi.ini from the key tables (npm run gen:ini). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderSampleIni } from '../agent/config/sample.js';
import { PACKAGE_ROOT } from '../agent/paths.js';

const path = join(PACKAGE_ROOT, 'deploy', 'krsi.ini');
writeFileSync(path, renderSampleIni());
process.stdout.write(`wrote ${path}\n`);
