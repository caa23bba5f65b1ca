// Migration 5: one owner per drop across server instances (docs/design.md "Scale-out").
// A drop's lease is three columns on its row, so a lease changes hands under the same row lock
// that orders every batch: a takeover and a batch can never interleave.
// - `lease_epoch` grows by one whenever the lease changes hands, or when a writer without a
//   lease writes a drop whose lease has lapsed. A batch carries the epoch its actor loaded
//   with and is refused (`fenced`, nothing applied) when the epoch moved on, so an owner that
//   paused past its lease cannot write, and the memory of an owner whose epoch still matches
//   is exactly what the database holds.
// - A call without an epoch (the rowlock strategy, a sweep of a drop no actor holds, any other
//   caller) is refused (`leased`) while another instance holds a live lease on the drop.
// - A batch with the current epoch renews the lease: an owner at work keeps its drops.
// The claims themselves are applied by migration 4's function, renamed: every rule it
// enforces stays in one place. A refusal is one row (ord 0, code `fenced` or `leased`) with
// the lease's owner in the `idempotency_key` column (migration 7 gives it a column of its own).
extension Migrations {
    static let leases = Migration(
        version: 5, name: "drop leases and fenced batches",
        sql: """
            ALTER TABLE drops
                ADD COLUMN lease_owner text,
                ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0,
                ADD COLUMN lease_expires_at timestamptz,
                -- When the current owner took the lease (operators, and the takeover figures).
                ADD COLUMN lease_granted_at timestamptz,
                ADD CONSTRAINT drops_lease_whole CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL));

            -- Where each server instance can be reached, for claims forwarded to a drop's owner.
            CREATE TABLE stockdrop_instances (
                id            text PRIMARY KEY CONSTRAINT stockdrop_instances_id_length CHECK (length(id) BETWEEN 1 AND 200),
                address       text NOT NULL CONSTRAINT stockdrop_instances_address_length CHECK (length(address) BETWEEN 1 AND 500),
                started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
                heartbeat_at  timestamptz NOT NULL DEFAULT clock_timestamp()
            );

            ALTER FUNCTION stockdrop_apply_batch(bigint, integer[], bigint[], text[]) RENAME TO stockdrop_apply_claims;

            CREATE FUNCTION stockdrop_apply_batch(p_drop bigint, p_kinds integer[], p_users bigint[], p_keys text[],
                                                  p_epoch bigint DEFAULT NULL, p_lease_ms integer DEFAULT NULL)
            RETURNS TABLE (ord integer, code text, reservation_id bigint, user_id bigint, purchase_id bigint,
                           created_us bigint, expires_us bigint, ended_us bigint, sold integer, reserved integer,
                           price_cents bigint, idempotency_key text)
            LANGUAGE plpgsql AS $fn$
            #variable_conflict use_column
            DECLARE
                l record;
                v_now timestamptz;
            BEGIN
                SELECT drops.lease_owner, drops.lease_epoch, drops.lease_expires_at INTO l
                FROM drops WHERE drops.id = p_drop FOR UPDATE;
                IF FOUND THEN
                    v_now := clock_timestamp();
                    IF p_epoch IS NOT NULL THEN
                        IF p_lease_ms IS NULL OR p_lease_ms <= 0 THEN
                            RAISE EXCEPTION 'a batch with an epoch needs a positive lease length, not %', p_lease_ms;
                        END IF;
                        -- An owner's epoch is only current while it still owns the lease (an
                        -- epoch-less write clears the owner as it moves the epoch on).
                        IF p_epoch <> l.lease_epoch OR l.lease_owner IS NULL THEN
                            RETURN QUERY SELECT 0, 'fenced'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
                                                NULL::bigint, NULL::bigint, NULL::integer, NULL::integer, NULL::bigint,
                                                l.lease_owner;
                            RETURN;
                        END IF;
                        UPDATE drops SET lease_expires_at = v_now + p_lease_ms * interval '1 millisecond'
                        WHERE drops.id = p_drop;
                    ELSIF l.lease_owner IS NOT NULL THEN
                        IF l.lease_expires_at > v_now THEN
                            RETURN QUERY SELECT 0, 'leased'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
                                                NULL::bigint, NULL::bigint, NULL::integer, NULL::integer, NULL::bigint,
                                                l.lease_owner;
                            RETURN;
                        END IF;
                        -- The owner lapsed: this write changes the drop behind its memory, so it
                        -- must reload (its next batch is fenced) before it answers again.
                        UPDATE drops SET lease_owner = NULL, lease_expires_at = NULL, lease_epoch = l.lease_epoch + 1
                        WHERE drops.id = p_drop;
                    END IF;
                END IF;
                RETURN QUERY SELECT * FROM stockdrop_apply_claims(p_drop, p_kinds, p_users, p_keys);
            END
            $fn$;

            -- Every write goes through the lease check: the inner function is not for callers.
            REVOKE EXECUTE ON FUNCTION stockdrop_apply_claims(bigint, integer[], bigint[], text[]) FROM PUBLIC;
            """)
}
