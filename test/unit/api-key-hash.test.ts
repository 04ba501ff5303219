// A key is found by the SHA-256 of its text (hex): keys already stored keep verifying only while
// hashKey gives exactly that, whatever call computes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashKey, sameSecret } from '../../services/api/src/tenancy/api-keys.ts';

test('a key hashes to the SHA-256 hex of its text, as stored keys were hashed', () => {
  // sha256sum of the key's text, computed outside Node.
  assert.equal(hashKey('mk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG'), 'c6b945db03a572bcb4dc0c4b66cd9c005782870d74518a7d02dc249e6aa5177f');
  assert.ok(sameSecret('mk_a', 'mk_a'));
  assert.ok(!sameSecret('mk_a', 'mk_b'));
});
