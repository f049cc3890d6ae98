"""Operations: the consortium CA, local federations of real processes, the demo."""
