"""The MDM's receiving side (``gridgate mdm``): the HTTPS endpoint gateways deliver meter data to,
for every EMT identity of every tenant (docs/mdm.md). It sits beside the head-end: it uses the
domain and the PKI and nothing above them."""
