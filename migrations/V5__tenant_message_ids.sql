-- Idempotency per tenant: a message id names one trigger of one tenant. Before, cycles and
-- rejected triggers were keyed by message_id alone, so one tenant's publisher could squat
-- another tenant's id and get its trigger dead-lettered.
ALTER TABLE cycles DROP CONSTRAINT cycles_message_id_key;
ALTER TABLE cycles ADD CONSTRAINT cycles_tenant_message_id_key UNIQUE (tenant_id, message_id);

ALTER TABLE rejected_triggers DROP CONSTRAINT rejected_triggers_pkey;
ALTER TABLE rejected_triggers ADD PRIMARY KEY (tenant_id, message_id);
