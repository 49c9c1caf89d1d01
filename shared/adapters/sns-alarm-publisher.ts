import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { Diagnosis } from '../alarms/diagnosis.ts';
import type { AlarmPublisher, PublishedAlarm } from '../groups/ports.ts';

/** SNS refuses a subject over 100 characters (and e-mail shows no more). */
export const MAX_SUBJECT_LENGTH = 100;
/** SNS messages hold 256 KiB; the JSON part is left out of a message that would not fit. */
const MAX_MESSAGE_BYTES = 256 * 1024 - 1024;

export interface SnsAlarmPublisherOptions {
  sns: SNSClient;
  topicArn: string;
}

/**
 * Alarms to an SNS topic, for people (e-mail) and for machines (a chat hook, a pager) alike: a subject and a
 * text to read, the alarm's JSON after it, and `group` and `alarm` as message attributes so a subscription
 * can filter. (The AlarmsRaised metric is counted where the alarm is recorded: shared/telemetry.ts.)
 */
export class SnsAlarmPublisher implements AlarmPublisher {
  readonly #options: SnsAlarmPublisherOptions;

  constructor(options: SnsAlarmPublisherOptions) {
    this.#options = options;
  }

  async publish(alarm: PublishedAlarm): Promise<void> {
    await this.#options.sns.send(
      new PublishCommand({
        TopicArn: this.#options.topicArn,
        Subject: alarmSubject(alarm),
        Message: alarmMessage(alarm),
        MessageAttributes: {
          group: { DataType: 'String', StringValue: alarm.group },
          alarm: { DataType: 'String', StringValue: alarm.alarm },
        },
      }),
    );
  }
}

/** `[fleetfold] <group>: <alarm>`, cut to what SNS accepts; SNS also refuses line breaks in a subject. */
export function alarmSubject(alarm: Pick<PublishedAlarm, 'group' | 'alarm'>): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what SNS refuses
  const subject = `[fleetfold] ${alarm.group}: ${alarm.alarm}`.replace(/[\u0000-\u001f]+/g, ' ');
  return subject.length <= MAX_SUBJECT_LENGTH ? subject : `${subject.slice(0, MAX_SUBJECT_LENGTH - 1)}…`;
}

function hostLines(diagnosis: Diagnosis): string[] {
  const lines = diagnosis.hosts.map((host) => {
    const services = Object.entries(host.services)
      .map(([name, service]) => `${name} ${service.version} ${service.status}`)
      .join(', ');
    const seen = host.lastSeen ? `, last seen ${host.lastSeen}` : '';
    const told = host.assigned ? `, told state ${host.assigned.stateVersion}` : '';
    return `  ${host.hostId} (${host.hostType}): ${host.status}${seen}${told}${services ? `; ${services}` : ''}`;
  });
  if (diagnosis.omittedHosts) lines.push(`  … and ${diagnosis.omittedHosts} more`);
  return lines;
}

/** What a person reads first, then the alarm as JSON for whatever parses it. */
export function alarmMessage(alarm: PublishedAlarm): string {
  const lines = [`${alarm.alarm} in group ${alarm.group} at ${alarm.at}`, '', alarm.detail, ''];
  if (alarm.rolloutId) lines.push(`Rollout: ${alarm.rolloutId}`);
  const { diagnosis } = alarm;
  if (diagnosis && diagnosis.hosts.length > 0) lines.push('Hosts:', ...hostLines(diagnosis));
  else if (alarm.hostIds?.length) lines.push(`Hosts: ${alarm.hostIds.join(', ')}`);
  if (diagnosis && diagnosis.dependencyChain.length > 0)
    lines.push(`Dependency chain: ${diagnosis.dependencyChain.join(' → ')}`);
  lines.push(`Alarm id: ${alarm.alarmId}`);
  const text = lines.join('\n');
  const withJson = `${text}\n\n${JSON.stringify(alarm, null, 2)}\n`;
  return Buffer.byteLength(withJson, 'utf8') <= MAX_MESSAGE_BYTES
    ? withJson
    : `${text}\n\n(the alarm's JSON is too large for a message: GET /alarms has it)\n`;
}
