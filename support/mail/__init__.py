"""The e-mail channel: inbound parsing and threading (parse.py, detect.py, inbound.py), IMAP
polling (imap.py) and outbound mail (outbound.py). docs/email.md."""
