// Each chaos file prints its figures when it ends: jobs submitted, faults injected, jobs finished, lost.
export const tally = { submitted: 0, faults: 0, finished: 0, lost: 0 };
process.on('exit', () => {
  console.log(`chaos figures: jobs submitted ${tally.submitted}, faults injected ${tally.faults}, jobs finished ${tally.finished}, lost ${tally.lost}`);
});
