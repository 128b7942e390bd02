"""Who acts: accounts, sign-in, tokens, API keys, and the policy of who may do what, where."""
