// Migration 9: a purchase asked before its hold expired buys the hold, though the batch that
// decides it comes after `expires_at`. Under overload a purchase waits inside the server (the
// event loop, a task taking the request up, the drop's actor, the next batch: 50-325, 40-167
// and 12-199 ms with 4,096 connections on 2 shared cores), and the sweep that opens every
// batch used to expire the hold first: a buyer who asked in time heard `expired`. Now:
// - a batch states when each of its purchases was asked (`p_ask_users`, `p_ask_us`: epoch
//   microseconds; the server takes the instant its event loop read the request);
// - the sweep expires a hold only once it is overdue by more than the purchase grace
//   (`p_grace_ms`, the store's: 1,000 ms, `Defaults.purchaseGraceMilliseconds`, unless a test
//   sets another; never more than half the hold's TTL), or at once when its user's purchase
//   in this batch was asked at or after `expires_at` (that purchase loses, as before);
// - a purchase asked before `expires_at` buys a hold still within the grace, and
//   `purchases.asked_at` records when it was asked (never after it was made, never before the
//   hold existed; NULL on rows made before this migration, meaning "when made"), so the
//   checker proves every purchase was asked in time;
// - a unit nobody buys comes back at most the grace after `expires_at`.
// A caller that states no ask (older binaries, sweeps) is judged as asking now. The function is
// restated whole (a released migration is not edited); the lease wrapper is made again with
// the new parameters and stays the only entry point.
extension Migrations {
    static let askedPurchases = Migration(
        version: 9, name: "a purchase asked before its hold expired buys it",
        sql: """
            ALTER TABLE purchases
                ADD COLUMN asked_at timestamptz,
                ADD CONSTRAINT purchases_asked_before_made CHECK (asked_at <= created_at);

            DROP FUNCTION stockdrop_apply_batch(bigint, integer[], bigint[], text[], bigint, integer);
            DROP FUNCTION stockdrop_apply_claims(bigint, integer[], bigint[], text[]);

            CREATE FUNCTION stockdrop_apply_claims(p_drop bigint, p_kinds integer[], p_users bigint[], p_keys text[],
                                                   p_ask_users bigint[], p_ask_us bigint[], p_grace_ms integer)
            RETURNS TABLE (ord integer, code text, reservation_id bigint, user_id bigint, purchase_id bigint,
                           created_us bigint, expires_us bigint, ended_us bigint, sold integer, reserved integer,
                           price_cents bigint, idempotency_key text)
            LANGUAGE plpgsql AS $fn$
            #variable_conflict use_column
            DECLARE
                d drops%ROWTYPE;
                v_now timestamptz;
                v_now_us bigint;
                v_expires_us bigint;
                v_started boolean;
                v_expired_ids bigint[]; v_expired_users bigint[];
                v_cancel_ords integer[]; v_cancel_ids bigint[]; v_cancel_users bigint[];
                v_buy_ords integer[]; v_buy_holds bigint[]; v_buy_ids bigint[]; v_buy_users bigint[];
                v_hold_ords integer[]; v_hold_users bigint[]; v_hold_ids bigint[];
                v_sold integer; v_reserved integer;
                v_attempt integer := 0;
                v_blocked bigint[]; v_room integer;
                v_ask_users bigint[]; v_ask_us bigint[];
                -- The caller's purchase grace (the store's; its memory sweeps by the same bound),
                -- by default Defaults.purchaseGraceMilliseconds.
                v_grace constant interval := coalesce(p_grace_ms, 1000) * interval '1 millisecond';
            BEGIN
                SELECT * INTO d FROM drops WHERE drops.id = p_drop FOR UPDATE;
                IF NOT FOUND THEN
                    v_now_us := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
                    RETURN QUERY SELECT i.ord::integer, 'unknown_drop'::text, NULL::bigint, i.u, NULL::bigint,
                                        NULL::bigint, NULL::bigint, NULL::bigint, NULL::integer, NULL::integer, NULL::bigint, NULL::text
                                 FROM unnest(p_users) WITH ORDINALITY AS i(u, ord)
                                 UNION ALL
                                 SELECT 0, 'counters', NULL, NULL, NULL, v_now_us, NULL, NULL, 0, 0, NULL, NULL;
                    RETURN;
                END IF;
                v_now := clock_timestamp();
                -- Times travel as microseconds since the epoch (cheap to parse), computed once.
                v_now_us := (extract(epoch FROM v_now) * 1000000)::bigint;
                v_expires_us := (extract(epoch FROM v_now + d.reserve_ttl_ms * interval '1 millisecond') * 1000000)::bigint;
                v_started := d.starts_at IS NULL OR d.starts_at <= v_now;

                -- When each purchase of this batch was asked, per user the earliest, never later
                -- than this clock's reading (a purchase asked at no stated time: now).
                v_ask_users := '{}'; v_ask_us := '{}';
                IF cardinality(p_ask_users) > 0 THEN
                    SELECT coalesce(array_agg(a.u), '{}'), coalesce(array_agg(a.t), '{}') INTO v_ask_users, v_ask_us
                    FROM (SELECT x.u, least(min(x.t), v_now_us) AS t FROM unnest(p_ask_users, p_ask_us) AS x(u, t)
                          WHERE x.u IS NOT NULL AND x.t IS NOT NULL GROUP BY x.u) a;
                END IF;

                -- 1. Holds overdue by more than the purchase grace (never more than half the
                -- hold's TTL) expire first, by this clock; so
                -- does an overdue hold whose user's purchase here was asked at or after its
                -- expires_at (that purchase loses). An overdue hold within the grace stays, for a
                -- purchase asked in time that is still on its way.
                WITH x AS (
                    UPDATE reservations r SET status = 'EXPIRED', ended_at = v_now
                    WHERE r.drop_id = p_drop AND r.status = 'ACTIVE' AND r.expires_at <= v_now
                      AND (r.expires_at <= v_now - least(v_grace, (r.expires_at - r.created_at) / 2)
                           OR (r.user_id = ANY (ARRAY(SELECT i.u FROM unnest(p_kinds, p_users) AS i(kind, u) WHERE i.kind = 2))
                               AND NOT EXISTS (SELECT 1 FROM unnest(v_ask_users, v_ask_us) AS a(u, t)
                                               WHERE a.u = r.user_id AND a.t < (extract(epoch FROM r.expires_at) * 1000000)::bigint)))
                    RETURNING r.id, r.user_id)
                SELECT coalesce(array_agg(x.id), '{}'), coalesce(array_agg(x.user_id), '{}')
                INTO v_expired_ids, v_expired_users FROM x;

                -- 2. Cancels and purchases: the first purchase-or-cancel of each user acts on their
                -- ACTIVE hold (live, or overdue within the grace and asked for in time: 1 expired
                -- the rest); a purchase whose key this user already spent (here: a replay; on
                -- another drop: refused) acts on nothing. Skipped (not merely empty) when the batch has none: the
                -- planner cannot know an array's size and would otherwise scan every reservation
                -- of the drop.
                v_cancel_ords := '{}'; v_cancel_ids := '{}'; v_cancel_users := '{}';
                v_buy_ords := '{}'; v_buy_holds := '{}'; v_buy_ids := '{}'; v_buy_users := '{}';
                IF 2 = ANY(p_kinds) OR 3 = ANY(p_kinds) THEN
                    LOOP
                        BEGIN
                            WITH ops AS (
                                SELECT DISTINCT ON (i.u) i.kind, i.u, i.k, i.ord::integer AS ord
                                FROM unnest(p_kinds, p_users, p_keys) WITH ORDINALITY AS i(kind, u, k, ord)
                                WHERE i.kind IN (2, 3)
                                  AND NOT (i.kind = 2 AND i.k IS NOT NULL AND EXISTS (
                                      SELECT 1 FROM purchases p WHERE p.user_id = i.u AND p.idempotency_key = i.k))
                                ORDER BY i.u, i.ord),
                            acted AS (
                                UPDATE reservations r
                                SET status = CASE WHEN ops.kind = 3 THEN 'CANCELLED' ELSE 'PURCHASED' END, ended_at = v_now
                                FROM ops
                                WHERE r.drop_id = p_drop AND r.user_id = ops.u AND r.status = 'ACTIVE'
                                RETURNING r.id, r.user_id, r.created_at, ops.kind, ops.k, ops.ord),
                            ins AS (
                                -- Asked: the user's earliest ask, not before the hold existed,
                                -- never after now (a clock stepped back leaves it at now).
                                INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, idempotency_key, created_at, asked_at)
                                SELECT a.id, p_drop, a.user_id, d.price_cents, a.k, v_now,
                                       least(v_now, greatest(a.created_at, coalesce(
                                           (SELECT to_timestamp(q.t / 1000000.0) FROM unnest(v_ask_users, v_ask_us) AS q(u, t)
                                            WHERE q.u = a.user_id), v_now)))
                                FROM acted a WHERE a.kind = 2
                                RETURNING purchases.id, purchases.reservation_id)
                            SELECT coalesce(array_agg(a.ord) FILTER (WHERE a.kind = 3), '{}'),
                                   coalesce(array_agg(a.id) FILTER (WHERE a.kind = 3), '{}'),
                                   coalesce(array_agg(a.user_id) FILTER (WHERE a.kind = 3), '{}'),
                                   coalesce(array_agg(a.ord) FILTER (WHERE a.kind = 2), '{}'),
                                   coalesce(array_agg(a.id) FILTER (WHERE a.kind = 2), '{}'),
                                   coalesce(array_agg(ins.id) FILTER (WHERE a.kind = 2), '{}'),
                                   coalesce(array_agg(a.user_id) FILTER (WHERE a.kind = 2), '{}')
                            INTO v_cancel_ords, v_cancel_ids, v_cancel_users, v_buy_ords, v_buy_holds, v_buy_ids, v_buy_users
                            FROM acted a LEFT JOIN ins ON ins.reservation_id = a.id;
                            EXIT;
                        EXCEPTION WHEN unique_violation THEN
                            -- A batch on another drop spent one of these keys and committed while
                            -- this one waited on the key's index entry. Each statement here reads
                            -- a new snapshot, so the retry sees that purchase and refuses the key.
                            v_attempt := v_attempt + 1;
                            IF v_attempt >= 3 THEN RAISE; END IF;
                        END;
                    END LOOP;
                END IF;

                v_sold := d.sold + cardinality(v_buy_ids);
                v_reserved := d.reserved - cardinality(v_expired_ids) - cardinality(v_cancel_ids) - cardinality(v_buy_ids);

                -- 3. Reserves in arrival order while stock lasts, one per user, within the limit.
                IF v_started THEN
                    -- The first reserve of each user, in arrival order (hashed, then one sort).
                    SELECT coalesce(array_agg(c.u ORDER BY c.ord), '{}'), coalesce(array_agg(c.ord ORDER BY c.ord), '{}')
                    INTO v_hold_users, v_hold_ords
                    FROM (SELECT i.u, min(i.ord)::integer AS ord
                          FROM unnest(p_kinds, p_users) WITH ORDINALITY AS i(kind, u, ord)
                          WHERE i.kind IN (1, 4) GROUP BY i.u) c;
                    -- Those already holding, or at their limit, among the users no owner vouched
                    -- for: one index scan for all of them, skipped when every reserve is vouched.
                    v_blocked := '{}';
                    IF 1 = ANY(p_kinds) THEN
                        SELECT coalesce(array_agg(b.user_id), '{}') INTO v_blocked FROM (
                            SELECT x.user_id FROM reservations x
                            WHERE x.user_id = ANY (ARRAY(SELECT i.u FROM unnest(p_kinds, p_users) AS i(kind, u) WHERE i.kind = 1))
                              AND x.drop_id = p_drop AND x.status IN ('ACTIVE', 'PURCHASED')
                            GROUP BY x.user_id
                            HAVING count(*) >= d.per_user_limit OR bool_or(x.status = 'ACTIVE')) b;
                    END IF;
                    IF cardinality(v_blocked) > 0 THEN
                        SELECT coalesce(array_agg(c.u ORDER BY c.ord), '{}'), coalesce(array_agg(c.ord ORDER BY c.ord), '{}')
                        INTO v_hold_users, v_hold_ords
                        FROM unnest(v_hold_users, v_hold_ords) AS c(u, ord)
                        WHERE NOT EXISTS (SELECT 1 FROM unnest(v_blocked) AS b(u) WHERE b.u = c.u);
                    END IF;
                    v_room := greatest(d.total_stock - v_sold - v_reserved, 0);
                    IF cardinality(v_hold_users) > v_room THEN
                        v_hold_users := v_hold_users[1:v_room];
                        v_hold_ords := v_hold_ords[1:v_room];
                    END IF;
                    -- Ids drawn in arrival order, so the insert needs no RETURNING and no join back.
                    SELECT coalesce(array_agg(nextval('reservations_id_seq')), '{}') INTO v_hold_ids FROM unnest(v_hold_users);
                    INSERT INTO reservations (id, drop_id, user_id, status, created_at, expires_at)
                    SELECT h.id, p_drop, h.u, 'ACTIVE', v_now, v_now + d.reserve_ttl_ms * interval '1 millisecond'
                    FROM unnest(v_hold_ids, v_hold_users) AS h(id, u);
                ELSE
                    v_hold_ords := '{}'; v_hold_users := '{}'; v_hold_ids := '{}';
                END IF;
                v_reserved := v_reserved + cardinality(v_hold_ids);

                UPDATE drops SET sold = v_sold, reserved = v_reserved WHERE drops.id = p_drop;

                -- 4. One row per item, one per swept hold (ord -1) and the counters (ord 0).
                RETURN QUERY
                    SELECT 0, 'counters', NULL::bigint, NULL::bigint, NULL::bigint, v_now_us, v_expires_us, NULL::bigint, v_sold, v_reserved, d.price_cents, NULL::text
                    UNION ALL
                    SELECT -1, 'swept', e.id, e.u, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                    FROM unnest(v_expired_ids, v_expired_users) AS e(id, u)
                    UNION ALL
                    SELECT c.ord, 'cancelled', c.id, c.u, NULL, r.created_at_us, r.expires_at_us, v_now_us, NULL, NULL, NULL, NULL
                    FROM unnest(v_cancel_ords, v_cancel_ids, v_cancel_users) AS c(ord, id, u)
                    CROSS JOIN LATERAL (SELECT (extract(epoch FROM x.created_at) * 1000000)::bigint AS created_at_us, (extract(epoch FROM x.expires_at) * 1000000)::bigint AS expires_at_us
                                        FROM reservations x WHERE x.id = c.id) r
                    UNION ALL
                    SELECT b.ord, 'purchased', b.hold, b.u, b.id, v_now_us, NULL, NULL, NULL, NULL, d.price_cents, p_keys[b.ord]
                    FROM unnest(v_buy_ords, v_buy_holds, v_buy_ids, v_buy_users) AS b(ord, hold, id, u)
                    UNION ALL
                    -- A new hold's times and price are the counters row's: not repeated per row.
                    SELECT h.ord, 'reserved', h.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                    FROM unnest(v_hold_ords, v_hold_ids) AS h(ord, id);

                -- A reserve that did not act is answered from the user's holds and purchases here.
                -- Each answer below is planned only when some item needs it: planned on every call,
                -- one statement for every kind cost a batch of one (rowlock) 8% of its throughput.
                IF cardinality(v_hold_ords)
                       < cardinality(array_positions(p_kinds, 1)) + cardinality(array_positions(p_kinds, 4)) THEN
                    RETURN QUERY
                        SELECT i.ord::integer,
                               CASE
                                   WHEN NOT v_started THEN 'not_started'
                                   WHEN c.active > 0 THEN 'already_holding'
                                   WHEN c.held >= d.per_user_limit THEN 'limit_reached'
                                   ELSE 'sold_out'
                               END,
                               NULL::bigint, i.u, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
                               NULL::integer, NULL::integer, NULL::bigint, NULL::text
                        FROM unnest(p_kinds, p_users) WITH ORDINALITY AS i(kind, u, ord)
                        CROSS JOIN LATERAL (
                            SELECT count(*) AS held, count(*) FILTER (WHERE x.status = 'ACTIVE') AS active
                            FROM reservations x
                            WHERE x.user_id = i.u AND x.drop_id = p_drop AND x.status IN ('ACTIVE', 'PURCHASED')) c
                        WHERE i.kind IN (1, 4) AND i.ord::integer <> ALL (v_hold_ords);
                END IF;

                -- A purchase or cancel that did not act is answered from the user's last hold on
                -- this drop (`last`) and, for a purchase, the purchase it replays (`pu`: its key's
                -- here, or without a key the purchase of that last hold).
                IF cardinality(v_cancel_ords) + cardinality(v_buy_ords)
                       < cardinality(array_positions(p_kinds, 2)) + cardinality(array_positions(p_kinds, 3)) THEN
                    RETURN QUERY
                        SELECT i.ord::integer,
                               CASE
                                   WHEN i.kind = 2 AND pu.id IS NOT NULL THEN 'replayed'
                                   WHEN i.kind = 2 AND i.k IS NOT NULL AND EXISTS (
                                       SELECT 1 FROM purchases o
                                       WHERE o.user_id = i.u AND o.idempotency_key = i.k AND o.drop_id <> p_drop)
                                       THEN 'idempotency_key_reused'
                                   WHEN i.kind = 2 AND last.status = 'EXPIRED' THEN 'expired'
                                   WHEN i.kind = 3 AND last.status = 'CANCELLED' THEN 'cancelled'
                                   ELSE 'no_active_reservation'
                               END,
                               CASE WHEN i.kind = 3 THEN last.id ELSE pu.reservation_id END,
                               i.u, pu.id,
                               (extract(epoch FROM CASE WHEN i.kind = 3 THEN last.created_at ELSE pu.created_at END) * 1000000)::bigint,
                               (extract(epoch FROM last.expires_at) * 1000000)::bigint,
                               (extract(epoch FROM last.ended_at) * 1000000)::bigint,
                               NULL::integer, NULL::integer, pu.price_cents, pu.idempotency_key
                        FROM unnest(p_kinds, p_users, p_keys) WITH ORDINALITY AS i(kind, u, k, ord)
                        LEFT JOIN LATERAL (
                            SELECT x.id, x.status, x.created_at, x.expires_at, x.ended_at FROM reservations x
                            WHERE x.user_id = i.u AND x.drop_id = p_drop
                            ORDER BY x.id DESC LIMIT 1) last ON true
                        LEFT JOIN LATERAL (
                            SELECT p.id, p.reservation_id, p.created_at, p.price_cents, p.idempotency_key FROM purchases p
                            WHERE i.kind = 2 AND p.user_id = i.u AND p.drop_id = p_drop
                              AND CASE WHEN i.k IS NULL THEN p.reservation_id = last.id AND last.status = 'PURCHASED'
                                       ELSE p.idempotency_key = i.k END
                            LIMIT 1) pu ON true
                        WHERE i.kind IN (2, 3) AND i.ord::integer <> ALL (v_cancel_ords || v_buy_ords);
                END IF;
            END
            $fn$;

            -- Every write goes through the lease check: the inner function is not for callers.
            REVOKE EXECUTE ON FUNCTION stockdrop_apply_claims(bigint, integer[], bigint[], text[], bigint[], bigint[], integer) FROM PUBLIC;

            CREATE FUNCTION stockdrop_apply_batch(p_drop bigint, p_kinds integer[], p_users bigint[], p_keys text[],
                                                  p_epoch bigint DEFAULT NULL, p_lease_ms integer DEFAULT NULL,
                                                  p_ask_users bigint[] DEFAULT NULL, p_ask_us bigint[] DEFAULT NULL,
                                                  p_grace_ms integer DEFAULT NULL)
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
                             FROM stockdrop_apply_claims(p_drop, p_kinds, p_users, p_keys, p_ask_users, p_ask_us, p_grace_ms) c;
            END
            $fn$;
            """)
}
