"""Lab-sheet OCR (`oncofed-edge ocr-labs`, contracts/lab-ocr.md): an OCR engine
behind one interface, table reconstruction, analyte and value normalisation."""
