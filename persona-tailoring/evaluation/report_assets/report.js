for (const browser of document.querySelectorAll(".browser")) {
  const search = browser.querySelector(".search"), outcome = browser.querySelector(".outcome");
  const rows = [...browser.querySelectorAll(".row")].map(row => [row, row.textContent.toLowerCase()]);
  const update = () => {
    const words = search.value.toLowerCase().trim();
    let shown = 0;
    for (const [row, text] of rows) {
      const outcomes = row.dataset.outcome.split(" ");
      const visible = text.includes(words) && (!outcome.value || outcomes.includes(outcome.value));
      row.hidden = !visible;
      shown += visible;
    }
    browser.querySelector(".count").textContent = `${shown} of ${rows.length} rows shown`;
  };
  search.addEventListener("input", update);
  outcome.addEventListener("change", update);
  update();
}
