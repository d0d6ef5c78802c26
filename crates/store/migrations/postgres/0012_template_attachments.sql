-- Files an email template carries (ICTCore's template media): each is a file in the blob
-- store, `<data_dir>/blobs/<account_id>/<blob>`; the row says what it is. An email sent
-- from the template carries the attachments the template has when the email leaves.
CREATE TABLE template_attachments (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    template_id BIGINT NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    blob TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX template_attachments_template ON template_attachments (template_id, id);
