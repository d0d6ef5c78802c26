-- An uploaded client logo (issue 3): the name of its file in the blob store, under
-- `<data_dir>/blobs/<account_id>/`. NULL when the logo is a URL or absent.
ALTER TABLE clients ADD COLUMN logo_blob TEXT;
