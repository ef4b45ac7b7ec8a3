/**
 * Which boot of the systemd group this is (run-kernel-specs.ts boots the group's VM more than once, on one
 * persistent folder): specs register what belongs to each boot with onBoot().
 */
export const BOOT_ENV = 'KRSI_BOOT';
export const BOOTS_ENV = 'KRSI_BOOTS';

/** this boot's number, 1 for the first */
export const BOOT = Number(process.env[BOOT_ENV] ?? '1');

/** describe() the suite in boot `n` only (mocha then neither runs nor counts it in the other boots) */
export function onBoot(n: number, title: string, fn: (this: Mocha.Suite) => void): void {
  if (BOOT === n) describe(`${title} (boot ${n})`, fn);
}
