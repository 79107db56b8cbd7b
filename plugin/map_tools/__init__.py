"""Map tools that draw visual prompts: point (click), box (drag), free-form (polygon or scribble)."""
