"""Plans and subscriptions: what each organisation may use."""
