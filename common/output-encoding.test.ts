// How output is encoded for JSON: text stays text (even all newlines), bytes JSON would escape six times over go as
// base64, and the size rule is computed exactly as JSON.stringify would spend it.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { encodeChunk, encodeOutput, jsonTextBytes } from './output-encoding.js';

it('counts the bytes a valid UTF-8 text takes inside a JSON string exactly', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (text) => {
      const bytes = Buffer.from(text);
      if (bytes.toString() !== text) return; // lone surrogates are not UTF-8
      expect(jsonTextBytes(bytes)).toBe(Buffer.byteLength(JSON.stringify(text)) - 2);
    }),
  );
});

it('keeps text a record can show, and sends NUL-heavy or invalid bytes as base64', () => {
  expect(encodeOutput('stdout', Buffer.from('héllo "world"\n'))).toEqual({ stdout: 'héllo "world"\n' });
  expect(encodeOutput('stdout', Buffer.from('\n'.repeat(1000)))).toEqual({ stdout: '\n'.repeat(1000) });
  expect(encodeOutput('stdout', new Uint8Array())).toEqual({ stdout: '' });
  const nuls = Buffer.alloc(3000);
  expect(encodeOutput('stdout', nuls)).toEqual({ stdout: null, stdoutBase64: nuls.toString('base64') });
  expect(encodeOutput('stderr', Buffer.from([0xff, 0x41]))).toEqual({ stderr: null, stderrBase64: '/0E=' });
  // A few control bytes in text are fine: only text JSON would more than double goes as base64.
  expect(encodeOutput('stdout', Buffer.from('a\x1b[1mbold\x1b[0m\n'))).toEqual({ stdout: 'a\x1b[1mbold\x1b[0m\n' });
});

it('streams each chunk in whichever form is smaller in JSON', () => {
  expect(encodeChunk(Buffer.from('one\n'))).toEqual({ data: 'one\n', encoding: 'utf8' });
  expect(encodeChunk(Buffer.alloc(4))).toEqual({ data: 'AAAAAA==', encoding: 'base64' });
  const yes = Buffer.from('y\n'.repeat(30_000));
  expect(encodeChunk(yes)).toEqual({ data: yes.toString('base64'), encoding: 'base64' });
  // A view into a larger buffer encodes only its own bytes.
  const whole = Buffer.from('xxABCxx');
  expect(encodeChunk(whole.subarray(2, 5))).toEqual({ data: 'ABC', encoding: 'utf8' });
  expect(encodeOutput('o', new Uint8Array(whole.buffer, whole.byteOffset + 2, 1).fill(0))).toEqual({
    o: null,
    oBase64: 'AA==',
  });
});
