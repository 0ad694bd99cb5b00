"""The escalation side: when a person should take over (`escalation_rules`, pure), the
services that hand over (`escalation`), the agent workspace (`agents`) and business hours
(`hours`)."""
