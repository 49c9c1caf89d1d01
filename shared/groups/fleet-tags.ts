/** Tag keys the EC2 fleet writes on every host instance and volume; the fleet's IAM policy is conditioned on them. */
export const FLEET_TAGS = {
  group: 'fleetfold:group',
  hostType: 'fleetfold:host-type',
  hostId: 'fleetfold:host-id',
  stack: 'fleetfold:stack',
} as const;
