-- The W3C traceparent of the request that enqueued an operation, so that its steps,
-- run later by a worker, continue that request's trace. NULL when traces are not
-- exported.
ALTER TABLE operations ADD COLUMN traceparent TEXT;
