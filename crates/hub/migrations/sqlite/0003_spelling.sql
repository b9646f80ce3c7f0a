-- A handle as its user typed it when registering ("User1"), shown in every
-- message and listing; `handle` stays the lowercase key that keeps handles
-- unique whatever their case. NULL (handles from before): shown as the key.
ALTER TABLE users ADD COLUMN spelling TEXT;
