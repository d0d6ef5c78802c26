-- Voice calls (issue 5 part 4). A phone call is a voice attempt; what Twilio or Somleng
-- reports about it (status callbacks) are provider events, shown as SCFM's remote phone
-- call events, which users may annotate with metadata.
ALTER TABLE attempts ADD COLUMN duration_seconds BIGINT;
ALTER TABLE attempts ADD COLUMN metadata JSONB NOT NULL DEFAULT '{}';
ALTER TABLE provider_events ADD COLUMN metadata JSONB NOT NULL DEFAULT '{}';
-- NULL until the event is changed (its metadata); shown as created_at then.
ALTER TABLE provider_events ADD COLUMN updated_at TIMESTAMPTZ;
-- The events of one call.
CREATE INDEX provider_events_attempt ON provider_events (attempt_id) WHERE attempt_id IS NOT NULL;
