"""The pure domain: vocabulary types shared by every layer. No I/O, no frameworks, no clock."""
