"""The messaging providers, one folder each, behind the interface of `integrations.base`."""
