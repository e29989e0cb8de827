-- When a device last had a message rejected (the dashboard's "devices needing attention":
-- rejecting messages). The device's twin writes it at most once a minute per device.
ALTER TABLE devices ADD COLUMN last_rejected_at TEXT;
