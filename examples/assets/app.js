// Shows the example SSE handler's counter: static page, dynamic handler, one server.
const count = document.getElementById("count");
const events = new EventSource("/server-sent-events");
events.addEventListener("count", (e) => {
  count.textContent = JSON.parse(e.data).count;
});
events.onerror = () => {
  count.textContent = "stream ended";
  events.close();
};
