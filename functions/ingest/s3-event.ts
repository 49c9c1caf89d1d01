import type { S3Event, S3EventRecord, SQSRecord } from 'aws-lambda';
import { ValidationError } from '../../shared/errors.ts';

export interface ObjectArrival {
  bucket: string;
  key: string;
  size: number;
  /** S3's receipt time. */
  eventTime: Date;
}

/**
 * An SQS message from an S3 notification carries `{"Records":[…]}`; S3 also sends one `s3:TestEvent` when the
 * notification is configured, which carries no records and is acknowledged as such.
 */
export function arrivalsOf(record: SQSRecord): ObjectArrival[] {
  let body: Partial<S3Event> & { Event?: string };
  try {
    body = JSON.parse(record.body);
  } catch {
    throw new ValidationError(`SQS message ${record.messageId} is not JSON`);
  }
  if (body.Event === 's3:TestEvent') return [];
  if (!Array.isArray(body.Records)) {
    throw new ValidationError(`SQS message ${record.messageId} is not an S3 event notification`);
  }
  return body.Records.filter((r) => r.eventName?.startsWith('ObjectCreated:')).map(toArrival);
}

function toArrival(record: S3EventRecord): ObjectArrival {
  return {
    bucket: record.s3.bucket.name,
    // S3 URL-encodes keys in notifications, with '+' for spaces.
    key: decodeURIComponent(record.s3.object.key.replaceAll('+', ' ')),
    size: record.s3.object.size,
    eventTime: new Date(record.eventTime),
  };
}
