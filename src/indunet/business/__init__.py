"""Business data beside the machines: inventory, incoming materials, orders and the fleet."""
