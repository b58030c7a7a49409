"""What master and worker agree on for the StreamResults call, beyond proto/worker.proto."""

from __future__ import annotations

# Stream metadata by which a worker asks for one Ack per store write (Ack.also_accepted) rather than one
# per result; a worker that does not send it (an older one, during a rolling update) gets one per result.
BATCH_ACKS_KEY, BATCH_ACKS_VALUE = "aisys-acks", "batch"
# The most result ids one Ack carries.
MAX_IDS_PER_ACK = 1000
