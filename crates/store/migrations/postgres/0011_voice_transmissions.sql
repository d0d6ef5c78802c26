-- A voice message sent on its own (POST /api/transmissions with channel voice) carries
-- what a callout would otherwise give its calls: the audio a PlayMessage call plays.
ALTER TABLE transmissions ADD COLUMN audio_url TEXT;
ALTER TABLE transmissions ADD COLUMN recording_id BIGINT;
