-- Contacts, groups and clients (issue 3).
CREATE TABLE clients (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    external_client_id TEXT NOT NULL,
    company_name TEXT NOT NULL,
    address TEXT,
    house_number TEXT,
    zip_code TEXT,
    country TEXT,
    city TEXT,
    phone_number TEXT,
    website_url TEXT,
    chamber_of_commerce_number TEXT,
    email TEXT,
    logo TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX clients_external_client_id_key ON clients (account_id, external_client_id);

CREATE TABLE contacts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    msisdn TEXT NOT NULL,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    address TEXT,
    custom1 TEXT,
    custom2 TEXT,
    custom3 TEXT,
    description TEXT,
    client_id BIGINT REFERENCES clients(id) ON DELETE SET NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    opted_out_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX contacts_msisdn_key ON contacts (account_id, msisdn);
CREATE INDEX contacts_account_id_idx ON contacts (account_id, id);
CREATE INDEX contacts_client_id_idx ON contacts (client_id);

CREATE TABLE groups (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX groups_name_key ON groups (account_id, name);

CREATE TABLE group_contacts (
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX group_contacts_contact_id_idx ON group_contacts (contact_id);
