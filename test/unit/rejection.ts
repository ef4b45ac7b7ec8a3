import { expect } from 'chai';

/** the error `p` rejects with, checked to be a `type`; fails the test when `p` resolves */
export async function rejection<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(type);
    return err as E;
  }
  throw new Error(`expected a rejection with a ${type.name}`);
}
