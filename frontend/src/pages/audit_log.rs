//! Admin: who changed what, newest first, a page at a time.

use leptos::prelude::*;

use crate::api::{self, AuditLog, audit_log};
use crate::components::{DataTable, loaded};
use crate::format;

#[component]
pub fn AuditLogPage() -> impl IntoView {
    // The id of the entry to page back from; `None` is the newest page.
    let before = RwSignal::new(None::<String>);
    let entries = LocalResource::new(move || {
        api::call::<AuditLog>(audit_log::Variables {
            before: before.get(),
        })
    });
    view! {
            <h1>"Audit log"</h1>
            {loaded(entries, move |data| {
                let entries = data.audit_log;
                if entries.is_empty() {
                    return view! {
                        <p class="empty">"Nothing recorded yet. Creating apps, keys, users and tokens is recorded here."</p>
                        {before.get_untracked().is_some().then(|| view! { <button type="button" on:click=move |_| before.set(None)>"Back to the newest"</button> })}
                    }
                    .into_any();
                }
                let oldest = entries.last().map(|entry| entry.id.clone());
                let rows = entries
                    .into_iter()
                    .map(|entry| {
                        let target = match &entry.target_id {
                            Some(id) => format!("{} {id}", entry.target_type),
                            None => entry.target_type.clone(),
                        };
                        view! {
                            <tr>
                                <td>{format::time(&entry.created_at)}</td>
                                <td>{entry.actor}</td>
                                <th scope="row">{entry.action}</th>
                                <td>{target}</td>
                                <td>{entry.detail.unwrap_or_default()}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <DataTable caption="Changes to your account, newest first" headers=&["When", "Who", "Action", "Target", "Detail"]>
    {rows}
    </DataTable>
                    <button type="button" on:click=move |_| before.set(oldest.clone())>"Older entries"</button>
                }
                .into_any()
            })}
        }
}
