ALTER TABLE `deliveries` ADD `replays` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `replayed_at` integer;--> statement-breakpoint
ALTER TABLE `delivery_attempts` ADD `cycle` integer DEFAULT 0 NOT NULL;