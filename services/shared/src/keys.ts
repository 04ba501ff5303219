/** Every Redis key makam owns (BullMQ's keys live under their own prefix). */
export function redisKeys(prefix: string) {
  return {
    dataset: (id: string) => `${prefix}:dataset:${id}`,
    datasets: `${prefix}:datasets`,
    job: (id: string) => `${prefix}:job:${id}`,
    jobs: `${prefix}:jobs`,
    jobEvents: (id: string) => `${prefix}:job:${id}:events`,
    jobMetrics: (id: string) => `${prefix}:job:${id}:metrics`,
    /** A tune job's trial jobs, scored by trial number. */
    tuneTrials: (id: string) => `${prefix}:job:${id}:trials`,
    cancelChannel: `${prefix}:cancel`,
    /** Every job that reaches a terminal status, once (webhooks follow it). */
    jobsFinished: `${prefix}:jobs:finished`,
    /** Jobs in a terminal status, scored by when they ended (ms): retention sweeps them from here. */
    jobsEnded: `${prefix}:jobs:ended`,
    tenantJobs: (tenant: string) => `${prefix}:tenant:${tenant}:jobs`,
    /** A tenant's jobs of one kind (finetune, tune, trial), for a filtered list. */
    tenantJobsOfKind: (tenant: string, kind: string) => `${prefix}:tenant:${tenant}:jobs:${kind}`,
    tenantActive: (tenant: string) => `${prefix}:tenant:${tenant}:active`,
    /** Places in tenantActive taken for jobs not yet created, scored by their deadline (ms, Redis's clock): taken by API versions before lua/createJob-8.lua, which takes the place and writes the record in one step; still given back when past their deadline. */
    tenantReserving: (tenant: string) => `${prefix}:tenant:${tenant}:reserving`,
    tenantActivePrefix: `${prefix}:tenant:`,
    /** Written before each WAIT for replicas (the API's ReplicaWaits), so the WAIT covers every earlier write. */
    replicationMarker: `${prefix}:replication:marker`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
