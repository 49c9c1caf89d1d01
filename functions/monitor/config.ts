import { type Env, heartbeatCoalesceSeconds, numberOr, required } from '../env.ts';

export interface MonitorFunctionConfig {
  eventsTable: string;
  hostsTable: string;
  documentsTable: string;
  /** Where the monitor hands a group whose rules call for action. */
  reconcileStateMachineArn: string;
  /** The schedule's period: names the time bucket of a tick's reconcile starts. */
  tickSeconds: number;
  /** The ingest's heartbeat coalescing window: a host is lost only that much after its missed heartbeats. */
  heartbeatCoalesceSeconds: number;
  /** Value of the `fleetfold:stack` tag this stack's instances carry: EC2 events of other instances are ignored. */
  stackTag?: string;
  /** Where raised alarms are published; without it they are only in the group streams and the alarm listing. */
  alarmTopicArn?: string;
}

export const DEFAULT_TICK_SECONDS = 60;

export function loadMonitorConfig(env: Env): MonitorFunctionConfig {
  return {
    eventsTable: required(env, 'EVENTS_TABLE'),
    hostsTable: required(env, 'HOSTS_TABLE'),
    documentsTable: required(env, 'DOCUMENTS_TABLE'),
    reconcileStateMachineArn: required(env, 'RECONCILE_STATE_MACHINE_ARN'),
    tickSeconds: numberOr(env, 'MONITOR_TICK_SECONDS', DEFAULT_TICK_SECONDS),
    heartbeatCoalesceSeconds: heartbeatCoalesceSeconds(env),
    ...(env.FLEET_STACK_TAG ? { stackTag: env.FLEET_STACK_TAG } : {}),
    ...(env.ALARM_TOPIC_ARN ? { alarmTopicArn: env.ALARM_TOPIC_ARN } : {}),
  };
}
