/**
 * The cost allocation tags every resource of the stack carries (and the inbox queues made at run time):
 * activate them once in the Billing console and Cost Explorer splits the bill by them.
 */
export const COST_ALLOCATION_TAGS: Readonly<Record<string, string>> = {
  application: 'fleetfold',
  'fleetfold:cost-center': 'fleetfold',
};
