CREATE TABLE `agent_channel_holds` (
	`channel_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`held` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`channel_id`, `agent_id`),
	FOREIGN KEY (`channel_id`) REFERENCES `channels`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`agent_id`) REFERENCES `agents`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
ALTER TABLE `channel_agents` ADD `agent_online` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `channel_agents` ADD `agent_idle_since` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `channel_agents` ADD `agent_load` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `channel_agents_choice_idx` ON `channel_agents` (`channel_id`,`agent_online`,`agent_idle_since`,`agent_load`,`agent_id`);--> statement-breakpoint
-- channel_agents carries copies of the agent's ordering fields (see src/db/schema.ts); these
-- triggers are their only writers, so every code path that changes an agent keeps them equal.
CREATE TRIGGER `agents_mirror_insert` AFTER INSERT ON `channel_agents` BEGIN
  UPDATE `channel_agents` SET (`agent_online`, `agent_idle_since`, `agent_load`) =
    (SELECT a.`status` = 'online', coalesce(a.`last_assigned_at`, a.`online_since`, 0), a.`load` FROM `agents` a WHERE a.`id` = NEW.`agent_id`)
  WHERE `channel_id` = NEW.`channel_id` AND `agent_id` = NEW.`agent_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `agents_mirror_update` AFTER UPDATE OF `status`, `load`, `last_assigned_at`, `online_since` ON `agents` BEGIN
  UPDATE `channel_agents` SET
    `agent_online` = NEW.`status` = 'online',
    `agent_idle_since` = coalesce(NEW.`last_assigned_at`, NEW.`online_since`, 0),
    `agent_load` = NEW.`load`
  WHERE `agent_id` = NEW.`id`;
END;
--> statement-breakpoint
UPDATE `channel_agents` SET (`agent_online`, `agent_idle_since`, `agent_load`) =
  (SELECT a.`status` = 'online', coalesce(a.`last_assigned_at`, a.`online_since`, 0), a.`load` FROM `agents` a WHERE a.`id` = `channel_agents`.`agent_id`);
--> statement-breakpoint
-- Backfill the hold counters from the conversations agents hold now.
INSERT INTO `agent_channel_holds` (`channel_id`, `agent_id`, `held`)
SELECT `channel_id`, `agent_id`, count(*) FROM `conversations`
WHERE `agent_id` IS NOT NULL AND `state` IN ('offered', 'active', 'wrapup')
GROUP BY `channel_id`, `agent_id`;
