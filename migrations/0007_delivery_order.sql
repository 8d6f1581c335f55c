ALTER TABLE `deliveries` ADD `recipient` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `held_behind` text;--> statement-breakpoint
CREATE INDEX `deliveries_open_recipient_idx` ON `deliveries` (`channel_id`,`recipient`,`created_at`) WHERE status IN ('pending', 'retrying');--> statement-breakpoint
CREATE INDEX `deliveries_held_behind_idx` ON `deliveries` (`held_behind`) WHERE held_behind IS NOT NULL;--> statement-breakpoint
-- Deliveries made before this migration: their recipient, from their message. They hold nothing.
UPDATE `deliveries` SET `recipient` = (SELECT json_extract(`details`, '$.to') FROM `messages` WHERE `messages`.`id` = `deliveries`.`message_id`);
