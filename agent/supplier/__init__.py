"""The supplier agent kind: an agent other agents buy from.

A supplier quotes (a price, a capacity and a delivery date it commits to, signed with its agent key), takes an
order once the buyer's payment has reached its wallet, and reports and confirms delivery. Its modules, one
concept each, each importing only those before it:

    config   its deployment file (configs/agents/supplier-*.yaml): the card every agent has, and its catalogue
    signed   what it signs: quotes and order statements as EIP-712 typed data under the mesh domain
    store    what it remembers: quotes, orders and the capacity they hold, in its own SQLite file
    payments how it knows it was paid: its own wallet's history, read through the mesh as itself
    desk     the rules of quoting and ordering, over the three above
    server   the skills as MCP tools of its own server, each with the scope it needs
"""
