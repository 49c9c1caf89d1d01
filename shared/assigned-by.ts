/** What assigned a host its desired state: kept in StateAssigned, shown in history and diagnoses. */
export interface AssignedBy {
  /** The reconcile run (its plan id) that decided the state. */
  run?: string;
  rolloutId?: string;
  rule?: string;
  /** Why, in words: "rollout", "revert", "replacement", "load balancer members" … */
  reason?: string;
}
