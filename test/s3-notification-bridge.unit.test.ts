import { describe, expect, it } from 'vitest';
import { type ObjectWrite, writtenFacts } from '../infra/local/s3-notification-bridge.ts';

const put: ObjectWrite = { bucket: 'b', key: 'snapshots/h/1.json', eventName: 'ObjectCreated:Put' };

describe('writtenFacts: what a PUT stored, without asking S3 again', () => {
  it('takes the decoded length of an aws-chunked body and the ETag without quotes', () => {
    expect(
      writtenFacts(
        put,
        {
          'content-encoding': 'aws-chunked',
          'content-length': '180',
          'x-amz-decoded-content-length': '42',
          'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        },
        { etag: '"abc123"' },
      ),
    ).toEqual({ size: 42, eTag: 'abc123' });
  });

  it('takes the content length of a plain body', () => {
    expect(writtenFacts(put, { 'content-length': '7' }, { etag: '"e"' })).toEqual({ size: 7, eTag: 'e' });
  });

  it('fails over to asking S3 when the length or the ETag is unknown, and for copies and multipart uploads', () => {
    expect(
      writtenFacts(put, { 'content-encoding': 'aws-chunked', 'content-length': '180' }, { etag: '"e"' }),
    ).toBeUndefined();
    expect(writtenFacts(put, { 'transfer-encoding': 'chunked' }, { etag: '"e"' })).toBeUndefined();
    expect(writtenFacts(put, { 'content-length': '7' }, {})).toBeUndefined();
    expect(
      writtenFacts({ ...put, eventName: 'ObjectCreated:Copy' }, { 'content-length': '0' }, { etag: '"e"' }),
    ).toBeUndefined();
    expect(
      writtenFacts(
        { ...put, eventName: 'ObjectCreated:CompleteMultipartUpload' },
        { 'content-length': '300' },
        { etag: '"e-2"' },
      ),
    ).toBeUndefined();
  });
});
