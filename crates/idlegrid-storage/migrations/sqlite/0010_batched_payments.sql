-- Validated results are paid by the verdict batch that accepts them, not by a trigger per
-- result: one transaction per job and device in the batch (`pay:<its first result id>`), its
-- rows the sums of the same per-result amounts (each result's charge still capped, in id
-- order, by what the job's quote has left). Three journal rows per result, each with its
-- indexes, and a jobs update per result cost embedded dispatch 10-20% of its throughput.
DROP TRIGGER results_paid;
