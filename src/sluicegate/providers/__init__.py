"""Provider adapters: one module per provider, all with the skeleton of `base.Adapter`."""
