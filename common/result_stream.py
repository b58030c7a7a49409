"""What master and worker agree on for the StreamResults call, beyond proto/worker.proto."""

from __future__ import annotations

# Stream metadata by which a worker asks for one Ack per store write (Ack.also_accepted) rather than one
# per result; a worker that does not send it (an older one, during a rolling update) gets one per result.
BATCH_ACKS_KEY, BATCH_ACKS_VALUE = "aisys-acks", "batch"
# The most result ids one Ack carries.
MAX_IDS_PER_ACK = 1000
# Initial metadata by which the master says it takes answer chunks on the stream. A worker sends no chunk on a
# stream without it: a master from before streaming would take a chunk for an empty answer (rolling update).
CHUNKS_KEY, CHUNKS_VALUE = "aisys-chunks", "1"
