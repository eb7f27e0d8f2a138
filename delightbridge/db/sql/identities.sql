-- A service's sender identities (service_sender_identities, the web app's table).
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: identities_upsert
INSERT INTO service_sender_identities (id, account_id, email, display_name, is_default,
                                       is_enabled)
SELECT u.id, $1, u.email, u.display_name, u.is_default, u.is_enabled
FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::bool[])
     AS u(id, email, display_name, is_default, is_enabled)
WHERE EXISTS (SELECT 1 FROM gmail_accounts WHERE id = $1)
ON CONFLICT (account_id, email) DO UPDATE
SET display_name = EXCLUDED.display_name, is_default = EXCLUDED.is_default,
    is_enabled = EXCLUDED.is_enabled

-- name: identities_remove_others
DELETE FROM service_sender_identities
WHERE account_id = $1 AND NOT (email = ANY($2::text[]))
