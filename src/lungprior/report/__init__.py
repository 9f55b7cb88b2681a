"""The experiment report: one self-contained HTML file."""
