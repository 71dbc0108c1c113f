"""Networks of links: trusted-node chains and the availability of their key supply."""
