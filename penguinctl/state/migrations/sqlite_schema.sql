-- penguinctl SQLite schema at revision 0016
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0016');
CREATE TABLE alert_digests (
	id INTEGER NOT NULL, 
	subscription_id INTEGER NOT NULL, 
	attempted_at DATETIME NOT NULL, 
	status VARCHAR NOT NULL, 
	items INTEGER NOT NULL, 
	subject VARCHAR NOT NULL, 
	error VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(subscription_id) REFERENCES alert_subscriptions (id) ON DELETE CASCADE
);
CREATE TABLE alert_items (
	id INTEGER NOT NULL, 
	subscription_id INTEGER NOT NULL, 
	event_seq INTEGER NOT NULL, 
	digest_id INTEGER, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alert_items_event UNIQUE (subscription_id, event_seq), 
	FOREIGN KEY(subscription_id) REFERENCES alert_subscriptions (id) ON DELETE CASCADE, 
	FOREIGN KEY(event_seq) REFERENCES events (seq)
);
CREATE TABLE alert_subscriptions (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	email VARCHAR NOT NULL, 
	every_minutes INTEGER NOT NULL, 
	event_types JSON NOT NULL, 
	last_sent_at DATETIME, 
	retry_at DATETIME, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alert_subscriptions_key UNIQUE (tenant, email)
);
CREATE TABLE api_keys (
	prefix VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	role VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	secret_hash VARCHAR NOT NULL, 
	previous_hash VARCHAR, 
	previous_valid_until DATETIME, 
	created_by VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME, 
	last_used_at DATETIME, 
	rotated_at DATETIME, 
	revoked_at DATETIME, 
	PRIMARY KEY (prefix)
);
CREATE TABLE "api_plans" (
	id VARCHAR NOT NULL, 
	heartbeat FLOAT, 
	tenant VARCHAR NOT NULL, 
	tenants JSON NOT NULL, 
	created_by VARCHAR NOT NULL, 
	operation VARCHAR NOT NULL, 
	targets JSON NOT NULL, 
	documents JSON NOT NULL, 
	checksum VARCHAR NOT NULL, 
	changes INTEGER NOT NULL, 
	"plan" JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	applied_by VARCHAR, 
	started_at DATETIME, 
	finished_at DATETIME, 
	exit_code INTEGER, 
	result JSON NOT NULL, 
	owner_host VARCHAR, 
	owner_pid INTEGER, 
	owner_started FLOAT, 
	PRIMARY KEY (id)
);
CREATE TABLE apply_runs (
	id INTEGER NOT NULL, 
	operation VARCHAR NOT NULL, 
	actor VARCHAR NOT NULL, 
	host VARCHAR NOT NULL, 
	pid INTEGER NOT NULL, 
	tenants JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	plan_checksum VARCHAR, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	summary JSON NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE audit_events (
	id INTEGER NOT NULL, 
	ts DATETIME NOT NULL, 
	actor VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	action VARCHAR NOT NULL, 
	resource VARCHAR NOT NULL, 
	result VARCHAR NOT NULL, 
	run_id INTEGER, 
	details JSON NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE backup_runs (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	server VARCHAR NOT NULL, 
	operation VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	repository VARCHAR NOT NULL, 
	snapshot_id VARCHAR, 
	actor VARCHAR NOT NULL, 
	stats JSON NOT NULL, 
	error VARCHAR, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE TABLE backup_snapshots (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	server VARCHAR NOT NULL, 
	snapshot_id VARCHAR NOT NULL, 
	short_id VARCHAR NOT NULL, 
	repository VARCHAR NOT NULL, 
	taken_at DATETIME NOT NULL, 
	paths JSON NOT NULL, 
	tags JSON NOT NULL, 
	stats JSON NOT NULL, 
	samples JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	run_id INTEGER, 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_backup_snapshots_server_id UNIQUE (server, snapshot_id)
);
CREATE TABLE billing_accounts (
	tenant VARCHAR NOT NULL, 
	stripe_customer_id VARCHAR, 
	budget_cents BIGINT, 
	status VARCHAR DEFAULT 'active' NOT NULL, 
	suspended_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (tenant)
);
CREATE TABLE billing_alerts (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	period VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	threshold INTEGER NOT NULL, 
	used BIGINT NOT NULL, 
	allowed BIGINT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_billing_alerts_key UNIQUE (tenant, period, kind, threshold)
);
CREATE TABLE campaign_mailboxes (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	address VARCHAR NOT NULL, 
	status VARCHAR DEFAULT 'active' NOT NULL, 
	paused_reason VARCHAR, 
	warmup_started_at DATETIME NOT NULL, 
	day VARCHAR, 
	day_count INTEGER DEFAULT '0' NOT NULL, 
	last_claim_at DATETIME, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_campaign_mailboxes_key UNIQUE (tenant, address)
);
CREATE TABLE campaign_sends (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	campaign_id INTEGER NOT NULL, 
	lead_id INTEGER, 
	step INTEGER NOT NULL, 
	variant VARCHAR, 
	mailbox VARCHAR NOT NULL, 
	recipient VARCHAR, 
	message_id VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	worker VARCHAR, 
	error VARCHAR, 
	claimed_at DATETIME NOT NULL, 
	sent_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_sends_lead_step UNIQUE (lead_id, step), 
	CONSTRAINT fk_sends_campaign FOREIGN KEY(campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE
);
CREATE TABLE campaigns (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	paused_reason VARCHAR, 
	spec JSON NOT NULL, 
	spec_hash VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_campaigns_tenant_name UNIQUE (tenant, name)
);
CREATE TABLE check_results (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	target_kind VARCHAR NOT NULL, 
	target VARCHAR NOT NULL, 
	"check" VARCHAR NOT NULL, 
	subject VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	critical BOOLEAN NOT NULL, 
	detail VARCHAR NOT NULL, 
	data JSON NOT NULL, 
	checked_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT fk_check_results_run FOREIGN KEY(run_id) REFERENCES check_runs (id) ON DELETE CASCADE
);
CREATE TABLE check_runs (
	id INTEGER NOT NULL, 
	actor VARCHAR NOT NULL, 
	targets JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	counts JSON NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE TABLE control_leases (
	name VARCHAR NOT NULL, 
	holder VARCHAR NOT NULL, 
	host VARCHAR NOT NULL, 
	pid INTEGER NOT NULL, 
	token INTEGER NOT NULL, 
	expires_at FLOAT NOT NULL, 
	elected_at FLOAT NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE events (
	seq INTEGER NOT NULL, 
	id VARCHAR NOT NULL, 
	type VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	subject VARCHAR NOT NULL, 
	payload JSON NOT NULL, 
	occurred_at DATETIME NOT NULL, 
	dispatched_at DATETIME, 
	PRIMARY KEY (seq), 
	CONSTRAINT uq_events_id UNIQUE (id)
);
CREATE TABLE host_keys (
	host VARCHAR NOT NULL, 
	port INTEGER NOT NULL, 
	key_type VARCHAR NOT NULL, 
	key_b64 VARCHAR NOT NULL, 
	fingerprint VARCHAR NOT NULL, 
	first_seen DATETIME NOT NULL, 
	CONSTRAINT pk_host_keys PRIMARY KEY (host, port)
);
CREATE TABLE inbound_cursors (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	mailbox VARCHAR NOT NULL, 
	folder VARCHAR NOT NULL, 
	uidvalidity BIGINT NOT NULL, 
	last_uid BIGINT DEFAULT '0' NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_inbound_cursors_key UNIQUE (tenant, mailbox, folder)
);
CREATE TABLE inbound_events (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	mailbox VARCHAR NOT NULL, 
	folder VARCHAR NOT NULL, 
	uidvalidity BIGINT NOT NULL, 
	uid BIGINT NOT NULL, 
	kind VARCHAR NOT NULL, 
	campaign_id INTEGER, 
	lead_id INTEGER, 
	send_id INTEGER, 
	status_code VARCHAR, 
	detail VARCHAR, 
	received_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_inbound_events_uid UNIQUE (tenant, mailbox, folder, uidvalidity, uid), 
	CONSTRAINT fk_inbound_campaign FOREIGN KEY(campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE
);
CREATE TABLE invoice_lines (
	id INTEGER NOT NULL, 
	invoice_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	kind VARCHAR NOT NULL, 
	description VARCHAR NOT NULL, 
	quantity BIGINT NOT NULL, 
	unit_amount_cents BIGINT NOT NULL, 
	amount_cents BIGINT NOT NULL, 
	period_start DATETIME NOT NULL, 
	period_end DATETIME NOT NULL, 
	details JSON NOT NULL, 
	stripe_item_id VARCHAR, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_invoice_lines_position UNIQUE (invoice_id, position), 
	CONSTRAINT fk_invoice_lines_invoice FOREIGN KEY(invoice_id) REFERENCES invoices (id) ON DELETE CASCADE
);
CREATE TABLE invoices (
	id INTEGER NOT NULL, 
	number VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	period VARCHAR NOT NULL, 
	period_start DATETIME NOT NULL, 
	period_end DATETIME NOT NULL, 
	currency VARCHAR(3) NOT NULL, 
	subtotal_cents BIGINT NOT NULL, 
	total_cents BIGINT NOT NULL, 
	status VARCHAR NOT NULL, 
	usage JSON NOT NULL, 
	stripe_invoice_id VARCHAR, 
	stripe_status VARCHAR, 
	payment_attempts INTEGER DEFAULT '0' NOT NULL, 
	payment_failed_at DATETIME, 
	last_attempt_at DATETIME, 
	paid_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_invoices_tenant_period UNIQUE (tenant, period), 
	CONSTRAINT uq_invoices_number UNIQUE (number)
);
CREATE TABLE job_due (
	job VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	subject VARCHAR NOT NULL, 
	due_at DATETIME NOT NULL, 
	PRIMARY KEY (job, tenant, subject)
);
CREATE TABLE job_pauses (
	job VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	actor VARCHAR NOT NULL, 
	paused_at DATETIME NOT NULL, 
	PRIMARY KEY (job, tenant)
);
CREATE TABLE job_runs (
	id INTEGER NOT NULL, 
	job VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	target VARCHAR NOT NULL, 
	"trigger" VARCHAR NOT NULL, 
	scheduled_for DATETIME NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	status VARCHAR NOT NULL, 
	summary JSON NOT NULL, 
	error VARCHAR, 
	host VARCHAR NOT NULL, 
	pid INTEGER NOT NULL, 
	owner VARCHAR NOT NULL, 
	lease_token INTEGER, 
	heartbeat FLOAT NOT NULL, 
	duration_seconds FLOAT, 
	PRIMARY KEY (id)
);
CREATE TABLE job_series (
	id INTEGER NOT NULL, 
	job VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	target VARCHAR NOT NULL, 
	schedule VARCHAR NOT NULL, 
	source VARCHAR NOT NULL, 
	next_run_at DATETIME, 
	last_scheduled_for DATETIME, 
	paused BOOLEAN NOT NULL, 
	failures INTEGER NOT NULL, 
	active BOOLEAN NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_job_series_key UNIQUE (job, tenant, target)
);
CREATE TABLE "leads" (
	id INTEGER NOT NULL, 
	campaign_id INTEGER NOT NULL, 
	email VARCHAR NOT NULL, 
	first_name VARCHAR, 
	last_name VARCHAR, 
	company VARCHAR, 
	timezone VARCHAR, 
	fields JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	next_step INTEGER DEFAULT '0' NOT NULL, 
	next_send_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_leads_campaign_email UNIQUE (campaign_id, email)
);
CREATE TABLE locks (
	tenant VARCHAR NOT NULL, 
	lock_id VARCHAR NOT NULL, 
	operation VARCHAR NOT NULL, 
	actor VARCHAR NOT NULL, 
	host VARCHAR NOT NULL, 
	pid INTEGER NOT NULL, 
	acquired_at DATETIME NOT NULL, pid_started FLOAT, 
	PRIMARY KEY (tenant)
);
CREATE TABLE plan_assignments (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	"plan" VARCHAR NOT NULL, 
	version INTEGER, 
	effective_from DATETIME NOT NULL, 
	effective_to DATETIME, 
	source VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_plan_assignments_start UNIQUE (tenant, effective_from)
);
CREATE TABLE resources (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	provider VARCHAR NOT NULL, 
	data JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	run_id INTEGER, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_resources_key UNIQUE (tenant, kind, name)
);
CREATE TABLE send_retries (
	lead_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	attempts INTEGER NOT NULL, 
	last_error VARCHAR, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (lead_id, step)
);
CREATE TABLE server_rebuilds (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	server VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	old JSON NOT NULL, 
	replacement JSON NOT NULL, 
	steps JSON NOT NULL, 
	snapshot_id VARCHAR, 
	actor VARCHAR NOT NULL, 
	error VARCHAR, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE TABLE spec_documents (
	id INTEGER NOT NULL, 
	tenant VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	sha256 VARCHAR NOT NULL, 
	document JSON NOT NULL, 
	run_id INTEGER, 
	actor VARCHAR NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_spec_documents_key UNIQUE (tenant, kind, name)
);
CREATE TABLE stripe_events (
	id VARCHAR NOT NULL, 
	type VARCHAR NOT NULL, 
	received_at DATETIME NOT NULL, 
	result VARCHAR NOT NULL, 
	detail VARCHAR, 
	PRIMARY KEY (id)
);
CREATE TABLE suppressions (
	id INTEGER NOT NULL, 
	scope VARCHAR NOT NULL, 
	scope_ref VARCHAR NOT NULL, 
	email_hash VARCHAR NOT NULL, 
	email VARCHAR, 
	reason VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_suppressions_key UNIQUE (scope, scope_ref, email_hash)
);
CREATE TABLE webhook_attempts (
	id INTEGER NOT NULL, 
	delivery_id INTEGER NOT NULL, 
	endpoint_id VARCHAR NOT NULL, 
	event_id VARCHAR NOT NULL, 
	attempt INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	latency_ms INTEGER NOT NULL, 
	status_code INTEGER, 
	outcome VARCHAR NOT NULL, 
	error VARCHAR, 
	response_excerpt VARCHAR NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(delivery_id) REFERENCES webhook_deliveries (id) ON DELETE CASCADE
);
CREATE TABLE webhook_deliveries (
	id INTEGER NOT NULL, 
	event_seq INTEGER NOT NULL, 
	event_id VARCHAR NOT NULL, 
	event_type VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	endpoint_id VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	lease_until DATETIME, 
	claimed_by VARCHAR, 
	last_status INTEGER, 
	last_error VARCHAR, 
	delivered_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_webhook_deliveries_event_endpoint UNIQUE (event_seq, endpoint_id), 
	FOREIGN KEY(event_seq) REFERENCES events (seq), 
	FOREIGN KEY(endpoint_id) REFERENCES webhook_endpoints (id) ON DELETE CASCADE
);
CREATE TABLE webhook_endpoints (
	id VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	url VARCHAR NOT NULL, 
	description VARCHAR NOT NULL, 
	event_types JSON NOT NULL, 
	allow_private BOOLEAN NOT NULL, 
	legacy_headers BOOLEAN NOT NULL, 
	source VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	disabled_reason VARCHAR, 
	failing_since DATETIME, 
	last_success_at DATETIME, 
	secret_rotated_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_resources_tenant ON resources (tenant);
CREATE INDEX ix_audit_events_ts ON audit_events (ts);
CREATE INDEX ix_audit_events_tenant ON audit_events (tenant);
CREATE INDEX ix_audit_events_resource ON audit_events (resource);
CREATE INDEX ix_locks_lock_id ON locks (lock_id);
CREATE INDEX ix_suppressions_hash ON suppressions (email_hash);
CREATE INDEX ix_sends_tenant_sent ON campaign_sends (tenant, sent_at);
CREATE INDEX ix_sends_mailbox_sent ON campaign_sends (mailbox, sent_at);
CREATE INDEX ix_sends_message_id ON campaign_sends (message_id);
CREATE INDEX ix_backup_runs_server ON backup_runs (server, operation, started_at);
CREATE INDEX ix_check_results_target ON check_results (target, "check", checked_at);
CREATE INDEX ix_plan_assignments_tenant ON plan_assignments (tenant, effective_from);
CREATE INDEX ix_invoices_period ON invoices (period);
CREATE INDEX ix_inbound_events_lead ON inbound_events (lead_id, kind);
CREATE INDEX ix_inbound_events_mailbox ON inbound_events (mailbox, kind);
CREATE INDEX ix_spec_documents_tenant ON spec_documents (tenant);
CREATE INDEX ix_job_series_due ON job_series (next_run_at);
CREATE INDEX ix_job_runs_series ON job_runs (job, tenant, target, id);
CREATE UNIQUE INDEX uq_job_runs_running ON job_runs (job, tenant, target) WHERE status = 'running';
CREATE UNIQUE INDEX uq_job_runs_tick ON job_runs (job, tenant, target, scheduled_for) WHERE trigger != 'manual' AND status != 'interrupted';
CREATE INDEX ix_job_due_when ON job_due (job, due_at);
CREATE INDEX ix_events_tenant_time ON events (tenant, occurred_at);
CREATE INDEX ix_events_type_time ON events (type, occurred_at);
CREATE INDEX ix_events_undispatched ON events (seq) WHERE dispatched_at IS NULL;
CREATE INDEX ix_webhook_endpoints_tenant ON webhook_endpoints (tenant);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX ix_webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX ix_webhook_attempts_delivery ON webhook_attempts (delivery_id);
CREATE INDEX ix_alert_items_pending ON alert_items (subscription_id, digest_id);
CREATE INDEX ix_alert_digests_subscription ON alert_digests (subscription_id, id);
CREATE INDEX ix_server_rebuilds_server ON server_rebuilds (server);
CREATE UNIQUE INDEX uq_server_rebuilds_running ON server_rebuilds (server) WHERE status = 'running';
CREATE INDEX ix_api_keys_tenant ON api_keys (tenant);
CREATE INDEX ix_resources_kind_name ON resources (kind, name, tenant);
CREATE INDEX ix_sends_campaign ON campaign_sends (campaign_id, status, sent_at);
CREATE INDEX ix_api_plans_tenant ON api_plans (tenant);
CREATE INDEX ix_leads_due ON leads (campaign_id, next_send_at) WHERE status = 'active';
COMMIT;
