// Migration 7: a refused batch names the lease's holder in a column of its own, and the
// counters row carries the drop's total stock. Migration 5's wrapper put the holder in
// `idempotency_key`, a column that means something else on every other row; the wrapper is
// made again with `lease_holder` (NULL on every row but a `fenced` or `leased` refusal) and
// `total_stock` (on the counters row only: live events show it beside the counters, and
// reading the drop again after each commit to learn it cost a query on the commit's path). The
// wrapper already holds the drop row's lock; nothing else changed. Migration 5 is history and
// stays as it was.
extension Migrations {
    static let leaseHolderColumn = Migration(
        version: 7, name: "the lease holder of a refused batch in a column of its own",
        sql: """
            DROP FUNCTION stockdrop_apply_batch(bigint, integer[], bigint[], text[], bigint, integer);

            CREATE FUNCTION stockdrop_apply_batch(p_drop bigint, p_kinds integer[], p_users bigint[], p_keys text[],
                                                  p_epoch bigint DEFAULT NULL, p_lease_ms integer DEFAULT NULL)
            RETURNS TABLE (ord integer, code text, reservation_id bigint, user_id bigint, purchase_id bigint,
                           created_us bigint, expires_us bigint, ended_us bigint, sold integer, reserved integer,
                           price_cents bigint, idempotency_key text, lease_holder text, total_stock integer)
            LANGUAGE plpgsql AS $fn$
            #variable_conflict use_column
            DECLARE
                l record;
                v_now timestamptz;
                v_total integer;
            BEGIN
                SELECT drops.lease_owner, drops.lease_epoch, drops.lease_expires_at, drops.total_stock INTO l
                FROM drops WHERE drops.id = p_drop FOR UPDATE;
                IF FOUND THEN
                    v_total := l.total_stock;
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
                                                NULL::text, l.lease_owner, NULL::integer;
                            RETURN;
                        END IF;
                        UPDATE drops SET lease_expires_at = v_now + p_lease_ms * interval '1 millisecond'
                        WHERE drops.id = p_drop;
                    ELSIF l.lease_owner IS NOT NULL THEN
                        IF l.lease_expires_at > v_now THEN
                            RETURN QUERY SELECT 0, 'leased'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
                                                NULL::bigint, NULL::bigint, NULL::integer, NULL::integer, NULL::bigint,
                                                NULL::text, l.lease_owner, NULL::integer;
                            RETURN;
                        END IF;
                        -- The owner lapsed: this write changes the drop behind its memory, so it
                        -- must reload (its next batch is fenced) before it answers again.
                        UPDATE drops SET lease_owner = NULL, lease_expires_at = NULL, lease_epoch = l.lease_epoch + 1
                        WHERE drops.id = p_drop;
                    END IF;
                END IF;
                RETURN QUERY SELECT c.*, NULL::text, CASE WHEN c.code = 'counters' THEN v_total END
                             FROM stockdrop_apply_claims(p_drop, p_kinds, p_users, p_keys) c;
            END
            $fn$;
            """)
}
