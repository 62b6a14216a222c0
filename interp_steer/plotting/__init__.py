"""Interactive Plotly figures of every result, saving them, and the HTML report."""

from interp_steer.plotting.export import (
    save_figure,
    save_figures,
    static_export_available,
    write_plotly_js,
)
from interp_steer.plotting.forcing import plot_forcing, plot_forcing_layers
from interp_steer.plotting.lens import plot_language_shares, plot_token_table
from interp_steer.plotting.report import Report, Section, write_report
from interp_steer.plotting.similarity import (
    chance_level,
    plot_similarity,
    plot_similarity_matrix,
)
from interp_steer.plotting.style import (
    add_family_labels,
    language_color,
    language_colors,
    legend_below,
    style_figure,
)
from interp_steer.plotting.sweep import plot_sweep, plot_sweep_heatmap, plot_transfer
from interp_steer.plotting.trajectory import plot_language_trajectory

__all__ = [
    "Report",
    "Section",
    "add_family_labels",
    "chance_level",
    "language_color",
    "language_colors",
    "legend_below",
    "plot_forcing",
    "plot_forcing_layers",
    "plot_language_shares",
    "plot_language_trajectory",
    "plot_similarity",
    "plot_similarity_matrix",
    "plot_sweep",
    "plot_sweep_heatmap",
    "plot_token_table",
    "plot_transfer",
    "save_figure",
    "save_figures",
    "static_export_available",
    "style_figure",
    "write_plotly_js",
    "write_report",
]
