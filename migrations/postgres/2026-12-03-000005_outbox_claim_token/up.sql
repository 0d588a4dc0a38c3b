-- Which claim of a message is current: a new token per claim, checked by every update
-- that records the outcome, so an instance whose lease ran out (and whose message another
-- instance took over) can neither renew it nor overwrite what the other recorded.
ALTER TABLE outbox ADD COLUMN claim_token TEXT;
